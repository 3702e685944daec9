package dev.mobexport.bench

import android.os.Build
import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith

@RunWith(AndroidJUnit4::class)
class DeviceInfoInstrumentedTest {
    @Test
    fun describesThisDevice() {
        val device = DeviceInfo.describe()
        assertEquals(Build.MODEL, device.deviceModel)
        assertEquals("Android", device.os)
        assertTrue(device.osVersion.contains("API ${Build.VERSION.SDK_INT}"))
        assertTrue(device.chip.isNotBlank())
    }

    @Test
    fun thermalStatusIsANamedState() {
        val context = InstrumentationRegistry.getInstrumentation().targetContext
        val status = DeviceInfo.thermalStatus(context)
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
            val names = setOf("NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL", "EMERGENCY", "SHUTDOWN")
            assertTrue("unexpected thermal status $status", status in names)
        }
    }

    @Test
    fun runtimeVersionIsReported() {
        assertEquals(BuildConfig.LITERT_VERSION, DeviceInfo.runtimeVersion())
        assertTrue(DeviceInfo.toolVersions().getValue("litert_native").isNotBlank())
    }
}
